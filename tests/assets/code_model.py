"""A "model from code" file: no pickle; Hangar runs this file and takes what set_model names."""

import hangar.pyfunc as hp
from hangar.models import set_model


class Upper(hp.PythonModel):
    def load_context(self, context):
        self.suffix = context.model_config.get("suffix", "")

    def predict(self, context, model_input, params=None):
        return [s.upper() + self.suffix for s in model_input.iloc[:, 0]]

    def predict_stream(self, context, model_input, params=None):
        for s in model_input.iloc[:, 0]:
            yield s.upper()


set_model(Upper())
