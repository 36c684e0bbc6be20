// Shell completion scripts, generated from the command tree so they cannot fall behind it.
import type { Command } from 'commander';

export interface CompletionModel {
  commands: { name: string; subcommands: string[]; options: string[] }[];
  globalOptions: string[];
  kinds: string[];
  outputs: string[];
}

export function completionModel(program: Command, kinds: string[], outputs: string[]): CompletionModel {
  const opts = (c: Command) => c.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x));
  return {
    commands: program.commands.map((c) => ({ name: c.name(), subcommands: c.commands.map((s) => s.name()), options: opts(c) })),
    globalOptions: [...opts(program), '--help'],
    kinds,
    outputs,
  };
}

const KIND_COMMANDS = ['get', 'describe', 'delete', 'boot', 'shutdown', 'reboot', 'save', 'console'];

export function bashCompletion(m: CompletionModel): string {
  const cases = m.commands.map((c) => {
    const words = [...c.subcommands, ...c.options, ...(KIND_COMMANDS.includes(c.name) ? m.kinds : [])].join(' ');
    return `    ${c.name}) words="${words}" ;;`;
  }).join('\n');
  return `# bash completion for n0ctl; load with: source <(n0ctl completion bash)
_n0ctl() {
  local cur prev cmd words i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  case "$prev" in
    -o|--output) COMPREPLY=( $(compgen -W "${m.outputs.join(' ')}" -- "$cur") ); return ;;
    -f|--filename) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
  esac
  cmd=""
  for ((i=1; i<COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in -*) ;; *) cmd="\${COMP_WORDS[i]}"; break ;; esac
  done
  if [ -z "$cmd" ]; then
    COMPREPLY=( $(compgen -W "${m.commands.map((c) => c.name).join(' ')} ${m.globalOptions.join(' ')}" -- "$cur") )
    return
  fi
  case "$cmd" in
${cases}
    *) words="" ;;
  esac
  if [ "$cmd" = "do" ]; then COMPREPLY=( $(compgen -f -W "$words" -- "$cur") ); return; fi
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}
complete -o default -F _n0ctl n0ctl
`;
}

export function zshCompletion(m: CompletionModel): string {
  const cases = m.commands.map((c) => {
    const words = [...c.subcommands, ...c.options, ...(KIND_COMMANDS.includes(c.name) ? m.kinds : [])].join(' ');
    return `    ${c.name}) compadd -- ${words} ;;`;
  }).join('\n');
  return `#compdef n0ctl
# zsh completion for n0ctl; load with: source <(n0ctl completion zsh)
_n0ctl() {
  if (( CURRENT == 2 )); then
    compadd -- ${m.commands.map((c) => c.name).join(' ')} ${m.globalOptions.join(' ')}
    return
  fi
  case "$words[CURRENT-1]" in
    -o|--output) compadd -- ${m.outputs.join(' ')}; return ;;
    -f|--filename) _files; return ;;
  esac
  case "$words[2]" in
${cases}
  esac
  [[ "$words[2]" == do ]] && _files
}
compdef _n0ctl n0ctl
`;
}
