import numpy as np
import pickle

from m6_pipeline.corpus.codepoints import CodepointBatch
from m6_pipeline.corpus.language_model import CharBigramLM

REFERENCE = [
    "中共中央总书记、国家主席发表新年讲话，向全国各族人民致以新年的祝福。",
    "今年我国经济继续保持快速健康发展，人民生活水平进一步提高。",
    "各地认真贯彻落实中央经济工作会议精神，推动改革开放不断深入。",
] * 20


def test_fluent_text_scores_lower_than_shuffled_text():
    lm = CharBigramLM.train(REFERENCE)
    fluent = "人民生活水平不断提高，经济保持健康发展。"
    rng = np.random.default_rng(0)
    shuffled = "".join(rng.permutation(list(fluent)))
    ppl = lm.perplexity(CodepointBatch.from_strings([fluent, shuffled, ""]))
    assert ppl[0] < ppl[1] / 3
    assert np.isnan(ppl[2])


def test_probabilities_are_normalised_over_the_vocabulary():
    lm = CharBigramLM.train(REFERENCE)
    prev = chr(lm.vocab[5])
    total = 0.0
    for c in list(lm.vocab) + [0x10FFFF]:  # every known character plus the unknown class
        lp = lm.char_log_probs(CodepointBatch.from_strings([prev + chr(c)]))
        total += float(np.exp(lp[1]))
    assert abs(total - 1.0) < 1e-6


def test_model_pickles_without_its_lookup_table():
    lm = CharBigramLM.train(REFERENCE)
    lm.perplexity(CodepointBatch.from_strings(["经济"]))
    blob = pickle.dumps(lm)
    assert len(blob) < 200_000
    again = pickle.loads(blob)
    text = CodepointBatch.from_strings(["经济发展"])
    np.testing.assert_allclose(again.perplexity(text), lm.perplexity(text))
