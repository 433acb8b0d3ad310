"""Quality experiments: the references, the ablation, the settings searches and the external
libraries' runners, each run as ``python -m experiments.NAME`` from the repository root."""
