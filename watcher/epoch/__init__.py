"""The epoch path's stages, one module each, in the order an epoch goes through them:

    sources.py   what the daemon watches (checkpoint files, the trainer's samples): one Source
    detect.py    1. folder events + rescan -> candidate paths
    settle.py    2. a path -> a complete, verified checkpoint (or a refusal)
    evaluate.py  3. a checkpoint (or images already made) -> images + numbers, in memory
    decide.py    4. the rules over the epochs' numbers -> decisions; the run's verdict
    act.py       6. a stop decision -> a stop request the launcher carries out
    path.py      `EpochPath`: the stages from evaluate to act, over one run's state

Stage 5 (record and publish: the epoch's folder, the state database, the git commit and the
destinations) is the package beside this one, `watcher.publish`: its outbox, Supabase sink,
alerts and results repository also serve what is not an epoch (the trainer's health alerts,
baseline pushes, the launcher). The daemon (`watcher.daemon`) is the loop around the path.

Nothing is imported here: `status` imports `watcher.epoch.decide` and must start fast.
"""
