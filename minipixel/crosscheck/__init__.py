"""Cross-checks against other implementations.

    reference.py   reference files: params, masks, images, every output and gradient (the format)
    compare.py     compare two reference files array by array; first diverging layer and position
    audit.py       black-box causality audit of any images -> logits function (measuring)
    report.py      the audit's report: verdict, text, JSON, map
    audit_cli.py   the `minipixel audit` command: loading targets, exit codes
    fields.py      the exact fields of the model kinds (the paper's three, full-context,
                   mask-B stacks), for audit --expect
    adapters.py    logits layouts; minipixel models, torch modules (and their leaky probes),
                   checkpoints as audit functions
    argtypes.py    checked command-line values, one-line errors

Command-line entries (argv lists, return an exit code): compare.compare_main,
audit_cli.audit_main, reference.reference_main.
"""
from .audit import AuditReport, audit
from .audit_cli import audit_main
from .compare import CompareReport, compare, compare_main
from .reference import (Reference, ReferenceFormatError, model_from_reference, read_reference,
                        reference_arrays, reference_main, write_reference)

__all__ = ["Reference", "ReferenceFormatError", "read_reference", "write_reference",
           "reference_arrays", "model_from_reference", "reference_main",
           "compare", "compare_main", "CompareReport", "audit", "audit_main", "AuditReport"]
