"""The drop ledger: the readers' shared counters (arena), the identity (book), and what the
supervisor makes of them (accounting: drop reports, the syscall_counts aggregate, ledger_final)."""
