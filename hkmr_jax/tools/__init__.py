"""Command-line tools and figures built on the library: the README's pictures, the demo."""
