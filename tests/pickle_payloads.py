"""Malicious pickle payloads for the loaders' refusal tests (test_io, test_smplify)."""


class Payload:
    """An object whose unpickling calls ``func(*args)``: what a hostile model file holds."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args
