import impl.search.profiles  # noqa: F401  the Hypothesis profiles (dev, ci, nightly)
pytest_plugins = ["pytester"]
