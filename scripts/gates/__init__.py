"""Regression gates: FP8 KV against BF16 KV on the same node (GSM8K accuracy, serving throughput).

Run as ``python -m scripts.gates {accuracy,throughput,all,serve,print-commands,eval-gsm8k}``.
"""
