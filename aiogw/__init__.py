"""aiogw: a transparent, governed gateway between coding agents and their LLM providers."""

__version__ = "0.1.0"
