"""Library code of the MMC toolkit, one subpackage per concern, in layers that point one
way (``setup.cfg``'s import-linter contracts): core (errors, registry, fileio, results),
losses and data, runs (run identity, no TensorFlow), models, attacks, training and
evaluation, reporting, and ``cli`` on top. Only ``utils.cli`` reads command-line flags;
everything below it takes plain arguments or one frozen config.
"""
