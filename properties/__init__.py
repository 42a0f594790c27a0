"""finalstate's checker: Hypothesis properties run against a chosen target (``pytest properties/ --target NAME``)."""
