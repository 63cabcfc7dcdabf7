"""Generation with refinement: ComfyUI client, workflows, strategies, orchestrator."""
