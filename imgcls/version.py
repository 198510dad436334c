"""imgcls's version: written into every manifest, so a core module, not the package root."""

__version__ = "0.1.0"
