//! `fleet-docs DIR`: writes man pages (DIR/share/man/man1) and bash, zsh
//! and fish completions (DIR/share/bash-completion/completions,
//! DIR/share/zsh/site-functions, DIR/share/fish/vendor_completions.d) for
//! every fleet binary, from the clap definitions the binaries parse.
//! `fleet-docs /usr/local` installs them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap_complete::Shell;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: fleet-docs DIR   (man pages and completions under DIR/share)");
        return ExitCode::from(2);
    };
    match write_all(Path::new(dir)) {
        Ok(written) => {
            println!("fleet-docs: wrote {written} files under {dir}/share");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("fleet-docs: {error}");
            ExitCode::from(1)
        }
    }
}

fn write_all(root: &Path) -> std::io::Result<usize> {
    let share = root.join("share");
    let man = share.join("man/man1");
    let shells: [(Shell, PathBuf); 3] = [
        (Shell::Bash, share.join("bash-completion/completions")),
        (Shell::Zsh, share.join("zsh/site-functions")),
        (Shell::Fish, share.join("fish/vendor_completions.d")),
    ];
    std::fs::create_dir_all(&man)?;
    let mut written = 0;
    let mut commands = fleet::commands::tool_commands();
    commands.push(fleet_lab::cli::command());
    for mut command in commands {
        let name = command.get_name().to_string();
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone()).render(&mut page)?;
        std::fs::write(man.join(format!("{name}.1")), page)?;
        written += 1;
        for (shell, dir) in &shells {
            std::fs::create_dir_all(dir)?;
            let path = clap_complete::generate_to(*shell, &mut command, &name, dir)?;
            // bash-completion loads a command's completion from a file of its bare name.
            if *shell == Shell::Bash {
                std::fs::rename(&path, dir.join(&name))?;
            }
            written += 1;
        }
    }
    Ok(written)
}
