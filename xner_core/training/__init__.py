"""Stage 3b, fine-tuning: native, transfer, multi-source, distillation, TAPT, robust training.

Modules, in pipeline order: `settings` (the names and options a run can ask for; import-light), `encoding`
(sentences -> windows -> length-grouped, padded batches), `objective` (the task and distillation losses and the
robust variants: FGM, PGD, sub-token noise, word smoothing), `neighbours` (word smoothing's neighbour table),
`rowadam` (row-sparse AdamW for the word-embedding matrix), `loop` (optimisers, layer freezing, the shared training
loop, dev selection, `TrainResult`), `finetune`, `distill` + `similarity` (teacher-student learning and its teacher
weights), `tapt` (masked-LM adaptation), and `dispatch` (`run_setting`: one entry point per compared setting).
How each method follows its paper and the authors' code, and where it differs: docs/training-methods.md.

Conventions shared by all of them: labels on the FIRST sub-token of every word (-100 elsewhere, as in
transformers' `run_ner.py`); sentences longer than `max_length` sub-tokens become several windows of whole words
(never truncated); length-grouped batches with dynamic padding; AdamW + linear warmup + grad clipping at 1.0
(the word-embedding matrix updated row-sparsely by `rowadam.RowAdamW`, with dense AdamW's result);
autocast at the run's precision (`numerics`: bf16 on CUDA and on CPUs with native bf16 by default); everything
seeded and run with deterministic kernels (same config, seed, device, precision and thread count -> the same
weights, bit for bit, in any process).
"""
