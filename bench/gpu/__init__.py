"""The CUDA benchmark's parts (`make bench-gpu`, entry point `bench/run_gpu.py`).

`sd15` builds the SD 1.5-shaped random model and the rank-32 kohya LoRA files, `measure`
times the daemon's evaluation and the variants around it, `trainer_worker` is the training
process that shares the GPU, `compile_phase` measures torch.compile with LoRA hotswap in a
child process, `slowdown` turns step times into the trainer figures.
"""
