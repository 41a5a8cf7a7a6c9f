"""Exceptions that end a run with a clear, traceback-free message."""

from __future__ import annotations


class ProdampiError(Exception):
    """An error the user can fix (bad deck, bad input file).  The CLI prints its lines, no traceback.

    Attributes
    ----------
    problems : list[str]   one line per problem
    exit_code : int        process exit status
    """

    exit_code = 2

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class DeckError(ProdampiError):
    """The input deck is invalid."""


class InputDataError(ProdampiError):
    """An input data file is missing, unreadable, or lacks a required field."""


class StageError(ProdampiError):
    """A stage cannot run (e.g. its inputs from an earlier stage are missing)."""

    exit_code = 3
