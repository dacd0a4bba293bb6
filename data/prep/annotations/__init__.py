"""Parsers of the official annotation files, one module per format, registered by name in :data:`PARSERS`.

A parser turns a data set's published files into :class:`Annotations`: the classes in the official order
(class index = official index where the data set has one) and one :class:`Entry` per video or clip. The shared
types and readers live in :mod:`data.prep.annotations.base`; importing this package registers every parser.
"""
from data.prep.annotations import diving48, folders, hacs, hmdb51, kinetics, mit, ssv2, ucf101  # noqa: F401
from data.prep.annotations.base import (
                                        PARSERS,
                                        SPLITS,
                                        Annotations,
                                        Entry,
                                        ParseArgs,
                                        Parser,
                                        find_annotation,
                                        folder_name,
                                        number,
                                        read_csv,
                                        read_json,
                                        register,
)

__all__ = ["PARSERS", "SPLITS", "Annotations", "Entry", "ParseArgs", "Parser", "find_annotation", "folder_name",
           "number", "read_csv", "read_json", "register"]
