# Installs gateway-agent from a Gatehouse hub on Windows and sets it up.
#
#   irm https://HUB/install.ps1 | iex
#   $env:GATEHOUSE_AGENT_TOKEN = "ga_..."; & ([scriptblock]::Create((irm https://HUB/install.ps1))) -NonInteractive -Name laptop
#
# Parameters: -Hub URL, -Name NAME, -Token TOKEN (prefer $env:GATEHOUSE_AGENT_TOKEN),
# -NonInteractive, -NoSetup, -NoModifyPath, -Insecure.
#
# The binary goes to %LOCALAPPDATA%\Gatehouse\bin\gateway-agent.exe after its
# SHA256 (from the hub's release manifest) is checked with Get-FileHash.
# Everything is in functions and Main runs on the last line, so a download cut
# short runs nothing at all.

param(
    [string]$Hub = "",
    [string]$Name = "",
    [string]$Token = "",
    [switch]$NonInteractive,
    [switch]$NoSetup,
    [switch]$NoModifyPath,
    [switch]$Insecure
)

$ErrorActionPreference = "Stop"
Set-StrictMode -Version Latest

# The hub this script was served by (filled in by the hub).
$GatehouseHubUrl = "..."

function Write-Step([string]$Message) {
    Write-Host "gatehouse: $Message"
}

function Stop-Install([string]$Message) {
    Write-Error "gatehouse: error: $Message" -ErrorAction Continue
    exit 1
}

function Get-Target {
    $arch = $env:PROCESSOR_ARCHITEW6432
    if (-not $arch) { $arch = $env:PROCESSOR_ARCHITECTURE }
    switch ($arch) {
        "AMD64" { return "x86_64-pc-windows-msvc" }
        "ARM64" { return "aarch64-pc-windows-msvc" }
        default { Stop-Install "unsupported processor: $arch (builds exist for x86_64 and arm64)" }
    }
}

function Resolve-Hub([string]$Url) {
    if (-not $Url -or $Url -eq "...") { Stop-Install "no hub URL: pass -Hub https://your-hub" }
    $Url = $Url.TrimEnd("/")
    $uri = [Uri]$Url
    if ($uri.Scheme -eq "http" -and -not $uri.IsLoopback) {
        if (-not $Insecure) { Stop-Install "refusing plain http to ${Url}: use https, or pass -Insecure if you really mean it" }
        Write-Step "warning: installing over plain http (-Insecure)"
    } elseif ($uri.Scheme -ne "https" -and $uri.Scheme -ne "http") {
        Stop-Install "the hub URL must start with https:// or http://"
    }
    return $Url
}

function Install-Binary([string]$HubUrl) {
    $target = Get-Target
    $binDir = Join-Path $env:LOCALAPPDATA "Gatehouse\bin"
    New-Item -ItemType Directory -Force -Path $binDir | Out-Null
    Write-Step "fetching the release manifest from $HubUrl"
    $manifest = Invoke-RestMethod -UseBasicParsing -Uri "$HubUrl/agent/releases/manifest.json"
    $asset = $manifest.assets.PSObject.Properties[$target]
    if (-not $asset) { Stop-Install "release $($manifest.version) has no build for $target" }
    $asset = $asset.Value
    $want = ([string]$asset.sha256).ToLowerInvariant()
    if ($want -notmatch "^[0-9a-f]{64}$") { Stop-Install "the manifest has no valid sha256 for $target" }
    $url = [string]$asset.url
    if ($url -notmatch "^https?://") {
        if ($url.StartsWith("/")) { $url = ([Uri]$HubUrl).GetLeftPart([UriPartial]::Authority) + $url }
        else { $url = "$HubUrl/agent/releases/$url" }
    }
    $tmp = Join-Path $binDir (".gateway-agent." + [Guid]::NewGuid().ToString("N") + ".tmp")
    try {
        Write-Step "downloading gateway-agent $($manifest.version) for $target"
        Invoke-WebRequest -UseBasicParsing -Uri $url -OutFile $tmp
        $got = (Get-FileHash -Algorithm SHA256 -Path $tmp).Hash.ToLowerInvariant()
        if ($got -ne $want) { Stop-Install "checksum mismatch for $url (expected $want, got $got): nothing was installed" }
        $dest = Join-Path $binDir "gateway-agent.exe"
        Move-Item -Force -Path $tmp -Destination $dest
        Write-Step "installed $dest (sha256 $got)"
        return @{ Bin = $dest; Dir = $binDir }
    } finally {
        if (Test-Path $tmp) { Remove-Item -Force $tmp }
    }
}

function Add-UserPath([string]$Dir) {
    $current = [Environment]::GetEnvironmentVariable("Path", "User")
    if (-not $current) { $current = "" }
    $parts = $current.Split(";") | Where-Object { $_ -ne "" }
    if ($parts -contains $Dir) { return }
    if ($NoModifyPath) { Write-Step "add $Dir to your Path to run gateway-agent"; return }
    [Environment]::SetEnvironmentVariable("Path", (($parts + $Dir) -join ";"), "User")
    $env:Path = "$env:Path;$Dir"
    Write-Step "added $Dir to your user Path (open a new terminal to use it)"
}

function Invoke-Setup([string]$Bin, [string]$HubUrl) {
    $setupArgs = @("setup", "--hub", $HubUrl)
    if ($Name) { $setupArgs += @("--name", $Name) }
    if ($Insecure) { $setupArgs += "--insecure" }
    if ($NonInteractive) {
        if (-not $Name) { Stop-Install "-NonInteractive needs -Name" }
        if (-not $Token) { Stop-Install "-NonInteractive needs a token: set `$env:GATEHOUSE_AGENT_TOKEN (or pass -Token)" }
        $setupArgs += "--non-interactive"
    }
    if ($Token) {
        # The token goes through a pipe, never the command line.
        $Token | & $Bin @setupArgs --token-stdin
    } else {
        & $Bin @setupArgs
    }
    if ($LASTEXITCODE -ne 0) { Stop-Install "setup did not finish: run ``$Bin setup`` to try again" }
}

function Main {
    if (-not $Hub) { $Hub = $GatehouseHubUrl }
    if (-not $Token -and $env:GATEHOUSE_AGENT_TOKEN) { $Token = $env:GATEHOUSE_AGENT_TOKEN }
    $hubUrl = Resolve-Hub $Hub
    $installed = Install-Binary $hubUrl
    Add-UserPath $installed.Dir
    if ($NoSetup) {
        Write-Step "done: run ``gateway-agent setup`` to connect it to $hubUrl"
        return
    }
    Invoke-Setup $installed.Bin $hubUrl
    Write-Step "done: start the agent with ``gateway-agent run`` (or ``gateway-agent service install``)"
}

Main
