"""Measuring: `rag eval` (questions, metrics, HTML report) and `rag bench` (speed), both through the
same Assistant a user talks to.

May import every stage below it (answer and down) and rag.options; never rag.apps."""
