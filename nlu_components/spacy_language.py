"""Rasa's SpacyNLP without the spaCy components that nothing in this pipeline reads."""

from __future__ import annotations

from typing import Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.utils import spacy_utils

# spaCy's entity recogniser: the pipeline reads tokens, lemmas and part-of-speech tags only
# (SpacyTokenizer, CountVectorsFeaturizer), and the appointment form's date parsing loads its
# own spaCy (actions/parsing.py). It has its own token-to-vector layer, so it was 1.9 of the
# 4.0 ms spaCy spent on each served message, and about 5 s of training. The tagger, the
# attribute ruler and the lemmatizer come before it and never read its output.
UNUSED_COMPONENTS = ("ner",)


@DefaultV1Recipe.register(
    [
        DefaultV1Recipe.ComponentType.MODEL_LOADER,
        DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER,
    ],
    is_trainable=False,
    model_from="SpacyNLP",
)
class SpacyNLP(spacy_utils.SpacyNLP):
    """Loads the spaCy model as Rasa does, then drops ``UNUSED_COMPONENTS``.

    Named as Rasa's class: Rasa hands the loaded model to the components that need one
    (SpacyTokenizer) by the provider's class name.
    """

    @staticmethod
    def load_model(spacy_model_name: Text) -> spacy_utils.SpacyModel:
        model = spacy_utils.SpacyNLP.load_model(spacy_model_name)
        for name in UNUSED_COMPONENTS:
            if name in model.model.component_names:
                model.model.remove_pipe(name)
        return model
