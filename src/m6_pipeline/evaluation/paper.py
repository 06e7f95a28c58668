"""The paper's published numbers (Tables 5-7 of M6), shown beside ours for reference only:
they were measured on FMIQA, E-Commerce IC and E-Commerce ITM, not on this project's data."""

TABLE5_FMIQA = {  # human-judged accuracy (%), 200 test questions
    "columns": ["detection", "relation", "colour", "number", "overall"],
    "rows": {"baseline": [74.0, 64.5, 69.0, 41.9, 66.8], "M6-base": [79.0, 71.0, 70.9, 45.2, 71.0],
             "M6-10B": [83.0, 77.4, 72.7, 48.4, 74.7]},
}
TABLE6_IC = {  # human scores 0-5, 100 test images
    "columns": ["grammar", "correctness", "richness"],
    "rows": {"baseline": [4.45, 2.58, 3.12], "M6-base": [4.61, 3.05, 3.57], "M6-10B": [4.70, 3.50, 3.82]},
}
TABLE7_ITM = {"columns": ["accuracy"], "rows": {"InterBert": [81.8], "M6-base": [90.2]}}
