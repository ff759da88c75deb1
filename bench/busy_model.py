"""The batching benchmark's model: ``predict`` holds the GIL in a busy loop for 20 ms per call plus
0.1 ms per row, then returns the length of each input string (so ``[["hello"]]`` gives ``[5]``).

It lives in this importable module so the package pickles the class by reference (bench/ is on
the server's PYTHONPATH).
"""

import time

import hangar.pyfunc as hp

PER_CALL_S = 0.020
PER_ROW_S = 0.0001


class BusyLenModel(hp.PythonModel):
    def predict(self, context, model_input, params=None):
        texts = model_input.iloc[:, 0].tolist()
        end = time.perf_counter() + PER_CALL_S + PER_ROW_S * len(texts)
        while time.perf_counter() < end:  # pure Python: the GIL is held, save for the interpreter's switches
            pass
        return [len(t) for t in texts]
