"""Metric backends: one module per metric family. Every third-party IQA import (pyiqa, open_clip, timm) lives
in these modules only, so a family can be replaced without touching the scorer."""
