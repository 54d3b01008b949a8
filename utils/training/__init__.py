"""Training: the distributed loop, one run end to end, adversarial training, checkpoints."""
