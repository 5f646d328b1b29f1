"""Example task files: the JSONL format a user writes to bring their own problems.

``code_tasks.jsonl`` holds two Code tasks with hidden unittest tests and
reference solutions; ``gym.make("boxgym/Code-v0", tasks=CODE_TASKS)`` serves them.
"""

from pathlib import Path

CODE_TASKS = Path(__file__).with_name("code_tasks.jsonl")
