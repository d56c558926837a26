"""The scalelab command-line interface."""
