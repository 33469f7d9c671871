"""fashion-edge: clothing recognition on small CPU devices."""
__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so that `import fashion_edge` (and the CLI's start-up) does not load OpenCV or onnxruntime.
    if name in ("Classifier", "Prediction"):
        from fashion_edge import classifier
        return getattr(classifier, name)
    if name in ("Catalog", "CatalogError", "Hit"):
        from fashion_edge import catalog
        return getattr(catalog, name)
    raise AttributeError(f"module 'fashion_edge' has no attribute {name!r}")
