"""`aitraining`: AutoTrain's command line, with flags generated from LLMTrainingParams.

    aitraining llm --train --model ./my-llama --data-path ./data --project-name my-run --trainer sft --peft
    aitraining llm --train ... --dry-run       # show the plan, load nothing
    aitraining --config run.yml                # AutoTrain's YAML format
    aitraining demo                            # a small real fine-tune on bundled data, on CPU

Every field becomes `--field-name` and `--field_name`; every bool also gets `--no-field-name` (stock
AutoTrain could not turn off a bool that defaults to true). `--block-size` defaults to 1024 on the
command line, as in AutoTrain.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import typing
from typing import Any, Callable, Sequence

from pydantic import ValidationError

from autotrain_unsloth import __version__
from autotrain_unsloth.params import LLMTrainingParams
from autotrain_unsloth.settings.defaults import AITRAINING
from autotrain_unsloth.settings.foreign_names import RENAMED_KEYS, is_aitraining_only
from autotrain_unsloth.settings.sections import SECTIONS

CLI_BLOCK_SIZE = "1024"  # AutoTrain's CLI default; the Python default is -1
AITRAINING_HELP = {"defaults": "aitraining", "chat_template": "tokenizer for sft/dpo/orpo/reward, none for default",
                   "response_only_loss": "on for sft with a chat template",
                   "log": "wandb (none where wandb is not installed)"}


class ArgumentParser(argparse.ArgumentParser):
    """argparse that suggests the closest flag for an unknown one."""

    # typeshed overloads parse_args for a caller's own namespace class; this parser takes and gives a Namespace.
    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self._subcommand_parser(getattr(parsed, "command", None))
            flags = [option for action in parser._actions for option in action.option_strings]
            unknown = [extra for extra in extras if extra.startswith("-")] or extras
            notes = []
            for extra in unknown:
                name = extra.split("=")[0].lstrip("-").replace("-", "_")
                if is_aitraining_only(name):
                    notes.append(f"{extra} ({name} is an aitraining setting that this backend does not support)")
                    continue
                if name in RENAMED_KEYS:
                    notes.append(f"{extra} (AutoTrain renamed it: --{RENAMED_KEYS[name].replace('_', '-')})")
                    continue
                close = difflib.get_close_matches(extra.split("=")[0], flags, n=1, cutoff=0.6)
                notes.append(f"{extra} (did you mean {close[0]}?)" if close else extra)
            parser.error("unrecognized arguments: " + ", ".join(notes))
        return parsed

    def _subcommand_parser(self, command: str | None) -> argparse.ArgumentParser:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and command in action.choices:
                return action.choices[command]
        return self


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True
    return annotation, False


def _parse_optional(convert: Callable) -> Callable:
    def parse(text: str) -> Any:
        return None if text.strip().lower() in ("none", "null") else convert(text)
    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _block_size(text: str) -> int | list[int]:
    sizes = [int(part) for part in text.split(",")]
    return sizes[0] if len(sizes) == 1 else sizes


def add_params_flags(parser: argparse.ArgumentParser, defaults: str = "autotrain") -> None:
    """One flag per LLMTrainingParams field (both spellings), bools with a --no- form, grouped by section; the help
    shows the defaults this command fills in (settings/defaults.py)."""
    sections = {section: parser.add_argument_group(f"{section} settings") for section in SECTIONS}
    groups = {name: sections[section] for section, names in SECTIONS.items() for name in names}
    for name, field in LLMTrainingParams.model_fields.items():
        group = groups[name]
        spellings = list(dict.fromkeys([f"--{name.replace('_', '-')}", f"--{name}"]))
        annotation, optional = _unwrap_optional(field.annotation)
        default = CLI_BLOCK_SIZE if name == "block_size" else field.default
        if defaults == "aitraining":
            default = AITRAINING_HELP.get(name, AITRAINING.get(name, default))
        help_text = f"{field.description} (default: {default})"
        if annotation is bool:
            group.add_argument(*spellings, dest=name, action="store_const", const=True, default=argparse.SUPPRESS, help=help_text)
            negatives = list(dict.fromkeys([f"--no-{name.replace('_', '-')}", f"--no_{name}"]))
            group.add_argument(*negatives, dest=name, action="store_const", const=False, default=argparse.SUPPRESS,
                               help=f"the opposite of --{name.replace('_', '-')}")
            continue
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": help_text}
        if typing.get_origin(annotation) is typing.Literal:
            kwargs["choices"] = list(typing.get_args(annotation)) + (["none"] if optional else [])
            kwargs["type"] = str
        elif name == "block_size":
            kwargs["type"], kwargs["metavar"] = _block_size, "N"
        else:
            convert = annotation if annotation in (int, float, str) else str
            kwargs["type"] = _parse_optional(convert) if optional else convert
        group.add_argument(*spellings, **kwargs)


def build_parser(defaults: str = "autotrain") -> argparse.ArgumentParser:
    parser = ArgumentParser(prog=os.path.basename(sys.argv[0]) if sys.argv[0].endswith(("autotrain", "aitraining"))
                            else "aitraining", description="AutoTrain-compatible LLM fine-tuning with Unsloth's fast path.",
                            allow_abbrev=False)
    parser.add_argument("--version", "-v", action="version", version=f"autotrain-unsloth {__version__}")
    parser.add_argument("--config", help="run an AutoTrain YAML config")
    parser.add_argument("--dry-run", "--dry_run", dest="config_dry_run", action="store_true",
                        help="with --config: show the plan and stop; loads no weights")
    commands = parser.add_subparsers(dest="command", parser_class=ArgumentParser)

    llm = commands.add_parser("llm", help="fine-tune a language model", allow_abbrev=False,
                              description="Fine-tune an LLM. Flags mirror AutoTrain's `autotrain llm`.")
    llm.add_argument("--train", action="store_true", help="run training")
    llm.add_argument("--deploy", action="store_true", help=argparse.SUPPRESS)
    llm.add_argument("--inference", action="store_true", help=argparse.SUPPRESS)
    llm.add_argument("--backend", default="local", help="where to run: local (default: local)")
    llm.add_argument("--dry-run", "--dry_run", dest="dry_run", action="store_true",
                     help="show the plan (what will run, and why) and stop; loads no weights")
    add_params_flags(llm, defaults)

    demo = commands.add_parser("demo", help="fine-tune a small local model on bundled data (CPU, no network)")
    demo.add_argument("--project-name", "--project_name", dest="project_name", default="demo-run")
    demo.add_argument("--steps", type=int, default=500)
    return parser


def params_from_args(args: argparse.Namespace, defaults: str = "autotrain") -> LLMTrainingParams:
    values = {name: getattr(args, name) for name in LLMTrainingParams.model_fields if hasattr(args, name)}
    values.setdefault("block_size", _block_size(CLI_BLOCK_SIZE))
    if defaults != "autotrain":
        values.setdefault("defaults", defaults)
    return LLMTrainingParams(**values)


def command_defaults() -> str:
    """Whose defaults this command takes: aitraining's for `aitraining` (and `python -m autotrain.cli.autotrain`,
    the module of aitraining's command), AutoTrain's for `autotrain` and `python -m autotrain_unsloth.cli`."""
    return "aitraining" if os.path.basename(sys.argv[0]).startswith("aitraining") else "autotrain"


def main(argv: list[str] | None = None, defaults: str | None = None) -> int:
    defaults = defaults or command_defaults()
    parser = build_parser(defaults)
    args = parser.parse_args(argv)
    try:
        if args.config:
            if args.command is not None:
                # Flags after --config would be ignored: the YAML file is the whole run.
                parser.error(f"--config runs {args.config} as it is; the `{args.command}` command and its flags are not "
                             "combined with it (put the settings in the file; --dry-run goes before or after --config)")
            from autotrain_unsloth.settings.config import run_config

            run_config(args.config, dry_run=args.config_dry_run, defaults=defaults)
            return 0
        if args.config_dry_run:
            parser.error("--dry-run before a command needs --config; for flags use `llm ... --dry-run`")
        if args.command == "demo":
            from autotrain_unsloth.demo import run_demo

            run_demo(args.project_name, args.steps)
            return 0
        if args.command != "llm":
            parser.print_help()
            return 2
        if args.deploy or args.inference:
            raise SystemExit("Error: --deploy and --inference are not implemented; use --train")
        if not (args.train or args.dry_run):
            raise SystemExit("Error: nothing to do: pass --train to train, or --dry-run to see the plan")
        params = params_from_args(args, defaults)
        from autotrain_unsloth.project import AutoTrainProject

        project = AutoTrainProject(params=params, backend=args.backend, process=True)
        if args.dry_run:
            project.plan()
        else:
            project.create()
        return 0
    except ValidationError as exc:
        print(f"Error: invalid settings:\n{_describe(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not user_error(exc):
            # A bug or an unforeseen failure: one line to say so, then the traceback, which says where.
            print(f"Error: {type(exc).__name__}: {exc} (unexpected; the traceback follows)", file=sys.stderr, flush=True)
            raise
        from autotrain_unsloth.project import JobFailed

        print(f"Error: {exc}", file=sys.stderr)
        return exc.returncode if isinstance(exc, JobFailed) else 1


def user_error(exc: BaseException) -> bool:
    """The errors this package raises about the user's settings, data, files or job (errors.UserError): one
    sentence each, no traceback. Everything else keeps its traceback."""
    from autotrain_unsloth.errors import UserError

    return isinstance(exc, UserError)


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {where + ': ' if where else ''}{message}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
