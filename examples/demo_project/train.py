"""A tiny "training" script for the hsm demo: no GPU, no libraries, a second or less per run.

It takes Hydra-style overrides (``learning_rate=0.01 batch_size=32 model.hidden_dim=64``), "trains"
a toy quadratic model, prints progress, and writes metrics.json into $HSM_TASK_DIR.
"""

import json
import math
import os
import sys
import time

params = {"learning_rate": 0.01, "batch_size": 32, "model.hidden_dim": 64, "seed": 0, "epochs": 5}
for arg in sys.argv[1:]:
    key, _, value = arg.partition("=")
    params[key] = type(params.get(key, value))(value) if key in params else value

lr = float(params["learning_rate"])
if lr >= 0.5:
    # What a real model does with a learning rate this high: the loss blows up, the run fails.
    print("epoch 0 loss nan", flush=True)
    raise FloatingPointError(f"loss is nan after epoch 0 (learning_rate={lr} is too high)")
loss = 10.0
for epoch in range(int(params["epochs"])):
    # A made-up loss curve: converges faster with a good learning rate and a wider model.
    loss = loss * (1 - min(0.9, lr * 20)) + 1.0 / math.log2(int(params["model.hidden_dim"])) + 0.001 * int(params["seed"])
    print(f"epoch {epoch} loss {loss:.4f}", flush=True)
    time.sleep(0.02)

accuracy = max(0.0, 1.0 - loss / 10)
print(f"METRIC final_loss={loss:.4f}")
task_dir = os.environ.get("HSM_TASK_DIR", ".")
with open(os.path.join(task_dir, "metrics.json"), "w") as fh:
    json.dump({"loss": round(loss, 4), "accuracy": round(accuracy, 4)}, fh)
with open(os.path.join(os.environ.get("HSM_OUTPUT_DIR", "."), "model.txt"), "w") as fh:
    fh.write(f"weights for {params}\n")
