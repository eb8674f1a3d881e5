"""Training a network from a RunConfig: the loop (`trainer.Trainer`), where spikes come from
(`sources`), what a run is built from (`build`), its durable state (`runstate`, `checkpoint`,
`metrics_log`), the SPEC-5 schedule (`schedule`) and the validation set (`validation`).

Nothing is imported here, so that importing one module (hm2bp.config reads `schedule`) does not
pull in the loop.
"""
