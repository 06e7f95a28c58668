"""What annotators read beside each item: the question each criterion asks and its scale
(the paper's human evaluations: Table 5 for VQA, Table 6 for captions, §4.4's Turing test)."""

from __future__ import annotations

SCALE_0_5 = "0 = unusable, 1 = very poor, 2 = poor, 3 = acceptable, 4 = good, 5 = as good as a careful human's"

CRITERIA_HELP = {
    "grammar": "Is the text fluent, grammatical Chinese? Judge the language only, not the facts.",
    "correctness": "Does the text say true things about the image or answer the question truly?",
    "richness": "Does it say much that is specific and useful (attributes, details), not generic filler?",
    "correct": "Is the answer right for the image and question? 1 = correct, 0 = wrong.",
    "format": "Does the poem keep its form: even number of lines, 5 or 7 characters each, all equal?",
    "fluency": "Does the poem read as Chinese verse, line by line and as a whole?",
    "human_is": "Which of the two answers did a person write? A or B.",
    "quality": "Is the image clear and plausible as a product photo (no broken patches or noise)?",
    "faithfulness": "Does the image show what the prompt states: the category, colour and pattern?",
}

KIND_HELP = {
    "caption": "A product image and a description written for it.",
    "qa": "A forum question and an answer to it.",
    "vqa": "An image, a question about it and an answer.",
    "poem": "A title and a poem written for it.",
    "qa_turing": "A forum question and two answers: one by a person, one by a model.",
    "t2i": "A Chinese description and an image generated from it.",
}

KEYS = ("Keys: a digit (or A/B) scores the highlighted criterion and moves to the next; Enter submits; "
        "S skips; F flags (write the comment first); U undoes your last answer.")
