"""Models: ResNet feature extractors, classifiers (backbone + head), loading checkpoints."""
