"""Samples the trainer renders itself (kohya's `{output_dir}/sample/`) and past runs' images.

names: kohya's sample file names; png: PNG completeness and the sample settler; epochs: one
epoch's set of samples, mapped to prompts by idx; layout: the folders `replay` reads;
demo_set: the stand-in 10-epoch folder of the demo's continue path.
"""
