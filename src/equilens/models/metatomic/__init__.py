"""Any metatomic model file (an exported ``AtomisticModel``) on the model
protocol: its feature outputs as layers, energy and forces by autograd
(:mod:`~equilens.models.metatomic.model`)."""
