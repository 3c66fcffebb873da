"""The trainer's own figures: loss, learning rate, speed, ETA and health, beside the samples.

- `points`: one logged scalar (`Point`) and kohya's tag names;
- `tensorboard`: kohya's TensorBoard event files under `logging_dir` (new files as they appear);
- `trainer_log`: the progress lines of the trainer's log, when there are no event files;
- `figures`: the figures `status` shows (step, epoch, loss, lr, speed, ETA), pure arithmetic;
- `health`: NaN loss, a loss rising over its minimum, a stalled trainer (pure);
- `storage`: the points and figures in the state database (bounded for long runs);
- `monitor`: the daemon's side: read, store, judge, alert;
- `gpu`: memory, utilisation and temperature per GPU through NVML, when present.

Nothing here imports torch: `status` reads these figures.
"""
