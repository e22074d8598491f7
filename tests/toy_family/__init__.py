"""A toy model family, written the way a contributor adds one: its own
package (config, model, task) and one line in the registry
(``tests/test_registry.py`` adds that line)."""
