# Sends Ctrl-C (or Ctrl-Break, with -Break) to the console of a process that has a console of
# its own (Start-Process without -NoNewWindow), as a user pressing it in that window would.
# Every process of that console gets it (cerfs and its indexer workers); this script ignores
# it itself. Run it in a pwsh of its own: it leaves its console for the target's.
# Used by .github/workflows/windows.yml; unverified until that workflow has run.
param(
    [Parameter(Mandatory = $true)] [int] $ProcessId,
    [switch] $Break
)
$ErrorActionPreference = 'Stop'
Add-Type -Namespace CerfsCi -Name Console -MemberDefinition @'
[DllImport("kernel32.dll", SetLastError = true)]
public static extern bool FreeConsole();
[DllImport("kernel32.dll", SetLastError = true)]
public static extern bool AttachConsole(uint dwProcessId);
[DllImport("kernel32.dll", SetLastError = true)]
public static extern bool SetConsoleCtrlHandler(IntPtr handlerRoutine, bool add);
[DllImport("kernel32.dll", SetLastError = true)]
public static extern bool GenerateConsoleCtrlEvent(uint dwCtrlEvent, uint dwProcessGroupId);
'@
$ctrlEvent = if ($Break) { 1 } else { 0 }  # CTRL_BREAK_EVENT, CTRL_C_EVENT
$null = [CerfsCi.Console]::FreeConsole()
if (-not [CerfsCi.Console]::AttachConsole([uint32]$ProcessId)) {
    throw "cannot attach to the console of process ${ProcessId}: error $([Runtime.InteropServices.Marshal]::GetLastWin32Error())"
}
# This process ignores Ctrl-C (NULL handler, add = TRUE); the event goes to the whole console
# (process group 0).
$null = [CerfsCi.Console]::SetConsoleCtrlHandler([IntPtr]::Zero, $true)
if (-not [CerfsCi.Console]::GenerateConsoleCtrlEvent([uint32]$ctrlEvent, 0)) {
    throw "GenerateConsoleCtrlEvent failed: error $([Runtime.InteropServices.Marshal]::GetLastWin32Error())"
}
# Ctrl-Break cannot be ignored: leave the console before it is delivered to this process.
$null = [CerfsCi.Console]::FreeConsole()
