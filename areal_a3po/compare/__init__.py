"""``a3po compare``: the study runner and the command (the report itself is :mod:`areal_a3po.report`).

- :mod:`.command`: the command's logic; a study is a list of :class:`~.command.Run` records.
- :mod:`.runner`: the embedded default, each arm through AReaL's own launcher (one time bound,
  progress, resume); :mod:`.launch`: what an arm runs (the recipe twin's header line);
  :mod:`.arms`: which arms (provider x seed x staleness) and their overrides;
  :mod:`.procs`: the processes an arm starts; :mod:`.progress`: its tensorboard while it runs.

The arms run the CPU testbeds (:mod:`areal_a3po.testbeds`)::

    from areal_a3po.compare.runner import run_default
    results = run_default("runs/embedded", steps=30, staleness=2, seed=1,
                          providers=["recompute", "a3po-step", "a3po"])

Importing this package is cheap; AReaL, torch and vLLM are only imported by the child processes.
"""
