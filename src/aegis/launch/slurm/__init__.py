"""``launcher=slurm``: the run as one SLURM batch job, a DDP gang of ``srun`` tasks.

``schema`` holds its config and ``checks`` its rules (pure); ``render`` writes the batch
script (``launcher.dry_run=true`` prints it); ``cluster`` is the only module that runs
SLURM's commands (sbatch, squeue, scontrol, sacct, scancel, sinfo), ``preflight`` asks
the cluster whether the request can ever start; ``batch`` is the supervisor that runs
inside the job (signals, requeue); ``states`` turns SLURM's job states into Aegis's;
``launcher`` ties them to the protocol. ``submitit`` holds the rules of Hydra's
submitit launcher (``hydra/launcher=submitit_slurm``), which remains available.
docs/slurm.md says what happens on each signal.
"""
