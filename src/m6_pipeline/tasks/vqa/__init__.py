"""Visual question answering (§4.2): FMIQA-format data, or questions generated from the
catalogue (detection, colour, pattern, number, relation); accuracy per question type as
Table 5 reports it."""
