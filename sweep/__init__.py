"""The Table-2 and Table-3 sweep of `reproduce.py` (the script is the command line; this is the library).

    plan       the runs a command asks for (datasets, grids, seeds: one `RunSpec` each), their stacks and order
    stack      training one stack into run records (`multi_program.train_programs`; TFa by `training.run`)
    executor   running the stacks (this process, `--jobs` processes or Ray) under claims; reading the records
    protocols  scores per (dataset, column) under the honest, setting-on-test and original protocols; baselines
    tables     Table 2 (lines, summaries, ours vs the paper, notes; .md and .csv) and Table 3
    breakdowns the pages beside Table 2: each protocol's choices, the grid like for like, more epochs
    figures    table2.png, ours against the paper
    precision  the bf16 acceptance test: honest TEST accuracy of the same plan in fp32 and bf16

Importing them does not import TensorFlow (the functions that train do), so a script checks its flags first.
"""
