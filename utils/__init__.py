"""Library code of the MMC toolkit: data, models, losses, registries, training helpers.

Nothing in this package reads command-line flags; entry scripts pass plain arguments.
"""
