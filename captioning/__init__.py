"""Captioning stage: BLIP captions of the GT images -> the DA-CLIP training CSVs.

``python -m captioning.run --root DIR`` (or ``torchrun --nproc_per_node N -m captioning.run``)
writes <root>/daclip_train.csv and daclip_val.csv, the caption store <root>/captions.parquet
and a ``caption`` column in the manifest. Modules: blip (model loading, batched generation),
pipeline (decoding in DataLoader workers), csvfile (sanitising, titles, CSV format),
store (caption store and per-rank journals), tiny (a random tiny BLIP for tests).
"""
