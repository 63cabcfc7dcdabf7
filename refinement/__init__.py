"""Refinement: generate through ComfyUI, score every attempt, change what should change, keep the best."""
