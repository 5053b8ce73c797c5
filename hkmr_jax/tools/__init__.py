"""Command-line tools built on the library: the README's figures.

`body_figure` (`hkmr-render-body`): the built-in body in poses and shapes;
`synthetic_sheet`: a contact sheet of the synthetic dataset; `lsp_seg_sheet`: predicted
vs true body-part maps of trained runs.
"""
