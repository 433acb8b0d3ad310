"""SFT and DPO training (HF Trainer / TRL), runnable standalone and under torchrun."""
