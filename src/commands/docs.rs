//! `fleet docs DIR`: man pages and bash, zsh and fish completions for
//! `fleet`, its subcommands and the tools' link names, generated from the
//! clap definitions the tools parse, so they never drift from the flags.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Arg, Command};
use clap_complete::{Generator, Shell};

use crate::partial_file::PartialFile;

use super::{exit, fleet_command, Tool, EXIT_STATUS, PPLAY_EXIT_STATUS};

/// `fleet docs`'s command line.
pub fn command() -> Command {
    Command::new("fleet docs")
        .about("Write man pages and shell completions under DIR/share (e.g. /usr/local)")
        .arg(
            Arg::new("dir")
                .value_name("DIR")
                .help("Where share/ goes: /usr/local, or a package's root")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf)),
        )
        .after_help(
            "Writes DIR/share/man/man1/*.1, DIR/share/bash-completion/completions/*, \
             DIR/share/zsh/site-functions/_* and DIR/share/fish/vendor_completions.d/*.fish \
             for fleet, fleet-run..., and the links prun, pcp, pslurp, pnuke, prsync, pplay.",
        )
}

/// Runs `fleet docs` with `args` (the program name first); returns the exit code.
pub fn main(args: Vec<OsString>) -> u8 {
    let matches = match command().try_get_matches_from(args) {
        Ok(matches) => matches,
        Err(error) => {
            let _ = error.print();
            return match error.use_stderr() {
                true => exit::USAGE,
                false => exit::OK,
            };
        }
    };
    let Some(dir) = matches.get_one::<PathBuf>("dir") else {
        return exit::USAGE;
    };
    match write_all(dir) {
        Ok(written) => {
            println!(
                "fleet docs: wrote {written} files under {}",
                dir.join("share").display()
            );
            exit::OK
        }
        Err(error) => {
            eprintln!("fleet docs: {error}");
            exit::OTHER
        }
    }
}

/// One page or completion to write: the command as called, and its examples.
struct Page {
    command: Command,
    exit_status: &'static str,
    examples: &'static str,
}

fn pages() -> Vec<Page> {
    let mut pages = vec![Page {
        command: fleet_command(),
        exit_status: EXIT_STATUS,
        examples:
            "fleet run -h hosts.txt uptime\nfleet play -i inventory.yml playbooks/xen-evtchn.yml",
    }];
    for tool in Tool::ALL {
        let examples = examples(tool);
        let exit_status = match tool {
            Tool::Play => PPLAY_EXIT_STATUS,
            _ => EXIT_STATUS,
        };
        let subcommand = format!("fleet-{}", tool.subcommand());
        pages.push(Page {
            command: tool
                .command_named(&subcommand.replace('-', " "))
                .name(subcommand.clone())
                .bin_name(subcommand.replace('-', " ")),
            exit_status,
            examples,
        });
        pages.push(Page {
            command: tool.command(),
            exit_status,
            examples,
        });
    }
    pages
}

fn examples(tool: Tool) -> &'static str {
    match tool {
        Tool::Run => "prun -h hosts.txt -p 100 -t 30 uptime\nprun -h hosts.txt -i --sudo 'dmesg | tail -3'\nprun -h hosts.txt --json 'systemctl is-active nginx' > status.json",
        Tool::Cp => "pcp -h hosts.txt xen-evtchn.ko /tmp/\npcp -h hosts.txt -r conf.d /etc/myapp/",
        Tool::Slurp => "pslurp -h hosts.txt -L logs /var/log/messages messages\ngrep -l 'kernel BUG' logs/*/messages",
        Tool::Nuke => "pnuke -h hosts.txt runaway-job",
        Tool::Sync => "prsync -h hosts.txt -a --delete site/ /srv/www/\nprsync -h hosts.txt -n -a site/ /srv/www/",
        Tool::Play => "pplay -i inventory.yml playbooks/xen-evtchn.yml\npplay -i inventory.yml --check playbooks/xen-evtchn.yml\npplay --resume ~/.local/state/fleet/runs/NAME.TIME/NAME.journal",
    }
}

/// An error that names the path it happened at.
fn naming(path: &Path) -> impl FnOnce(std::io::Error) -> std::io::Error + '_ {
    move |error| std::io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

/// Writes `contents` as `path`, replacing what has that name (a link is
/// replaced, not written through), all at once.
fn install(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = PartialFile::replacing(path).map_err(naming(path))?;
    file.write_all(contents).map_err(naming(path))?;
    file.commit().map_err(naming(path))
}

fn write_all(root: &Path) -> std::io::Result<usize> {
    let share = root.join("share");
    let man = share.join("man/man1");
    let shells: [(Shell, PathBuf); 3] = [
        (Shell::Bash, share.join("bash-completion/completions")),
        (Shell::Zsh, share.join("zsh/site-functions")),
        (Shell::Fish, share.join("fish/vendor_completions.d")),
    ];
    std::fs::create_dir_all(&man).map_err(naming(&man))?;
    let mut written = 0;
    for page in pages() {
        let mut command = page.command.clone();
        let name = command.get_name().to_string();
        let page_path = man.join(format!("{name}.1"));
        install(&page_path, &man_page(&page)?)?;
        written += 1;
        // Completions are for names a shell runs: fleet and the links.
        if name.starts_with("fleet-") {
            continue;
        }
        for (shell, dir) in &shells {
            std::fs::create_dir_all(dir).map_err(naming(dir))?;
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, &name, &mut script);
            // bash-completion loads a command's completion from a file of its bare name.
            let file = match shell {
                Shell::Bash => name.clone(),
                _ => shell.file_name(&name),
            };
            install(&dir.join(file), &script)?;
            written += 1;
        }
    }
    Ok(written)
}

/// clap_mangen's sections, then EXIT STATUS and EXAMPLES.
fn man_page(
    Page {
        command,
        exit_status,
        examples,
    }: &Page,
) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(command.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    if command.has_subcommands() {
        man.render_subcommands_section(&mut page)?;
    }
    section(&mut page, "EXIT STATUS", exit_status.lines().skip(1))?;
    section(&mut page, "EXAMPLES", examples.lines())?;
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// A man page section of preformatted lines (roff's no-fill mode).
fn section<'a>(
    page: &mut Vec<u8>,
    title: &str,
    lines: impl Iterator<Item = &'a str>,
) -> std::io::Result<()> {
    writeln!(page, ".SH \"{title}\"\n.nf")?;
    for line in lines {
        // A leading dot or quote would be read as a roff request.
        let line = line.replace('\\', "\\\\");
        writeln!(page, "\\&{line}")?;
    }
    writeln!(page, ".fi")
}
