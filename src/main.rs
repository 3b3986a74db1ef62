fn main() -> std::process::ExitCode {
    elsx::cli::main()
}
