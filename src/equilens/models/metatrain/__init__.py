"""metatrain's trainer driven by equilens (``task: metatrain``,
:mod:`~equilens.models.metatrain.task`); the models it writes are opened
through the metatomic adapter after ``mtt export``."""
