"""Registry, composition, stage cache, runner, configuration and the command-line interface."""
