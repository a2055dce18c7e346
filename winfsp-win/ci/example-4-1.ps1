# [MS-CER] example 4.1 (application fault) as a Windows CER client performs it, against a
# cerfs volume: a WinFsp drive (X:\) or its SMB share (\\localhost\cer). Throws on any
# difference. Used by .github/workflows/windows.yml.
param(
    [Parameter(Mandatory = $true)] [string] $Root,
    [string] $Offset = '00000000'
)
$ErrorActionPreference = 'Stop'
$app = "TestApplication\1.0.0.0\TestModule\1.0.0.0\$Offset"
$line = "15:32:23  04-23-2007`tTestMachine`tTestUser`t"

function Expect($what, $got, $want) {
    if ($got -cne $want) { throw "${what}: got [$got], want [$want]" }
}

# 1-2: no policy.txt; the bucket's status.txt is there (set by the admin).
if (Test-Path "$Root\policy.txt") { throw 'policy.txt should not exist' }
$status = [IO.File]::ReadAllText("$Root\status\$app\status.txt")
if ($status -notmatch "Tracking=YES") { throw "status.txt: $status" }

# Earlier reports: count.txt says 5 / 10 (created by a client that found none).
New-Item -ItemType Directory -Force "$Root\counts\$app" | Out-Null
[IO.File]::WriteAllText("$Root\counts\$app\count.txt", "Cabs Gathered=5`r`nTotal Hits=10`r`n")

# 7: copy the cab.
New-Item -ItemType Directory -Force "$Root\cabs\$app" | Out-Null
$cab = New-Object byte[] 150000
(New-Object Random 7).NextBytes($cab)
$cab[0] = 0x4D; $cab[1] = 0x53; $cab[2] = 0x43; $cab[3] = 0x46
$src = Join-Path $env:RUNNER_TEMP "d5je031w-$Offset.cab"
[IO.File]::WriteAllBytes($src, $cab)
Copy-Item $src "$Root\cabs\$app\d5je031w.cab"

# 8: count.txt, pattern a (one handle: read, seek 0, write, set length, close).
$f = [IO.File]::Open("$Root\counts\$app\count.txt", 'Open', 'ReadWrite', 'None')
$reader = New-Object IO.StreamReader($f)
$text = $reader.ReadToEnd()
$c = [int]([regex]::Match($text, 'Cabs Gathered=(\d+)').Groups[1].Value) + 1
$h = [int]([regex]::Match($text, 'Total Hits=(\d+)').Groups[1].Value) + 1
$bytes = [Text.Encoding]::ASCII.GetBytes("Cabs Gathered=$c`r`nTotal Hits=$h`r`n")
$f.Seek(0, 'Begin') | Out-Null
$f.Write($bytes, 0, $bytes.Length)
$f.SetLength($bytes.Length)
$f.Close()

# 9: tracking lines.
[IO.File]::AppendAllText("$Root\crash.log", "$line$app`r`n")
[IO.File]::AppendAllText("$Root\cabs\$app\hits.log", "${line}d5je031w.cab`r`n")

# The share now holds exactly what the example says.
Expect 'count.txt' ([IO.File]::ReadAllText("$Root\counts\$app\count.txt")) "Cabs Gathered=6`r`nTotal Hits=11`r`n"
$crash = [IO.File]::ReadAllText("$Root\crash.log")
if (-not $crash.EndsWith("$line$app`r`n")) { throw "crash.log: $crash" }
Expect 'hits.log' ([IO.File]::ReadAllText("$Root\cabs\$app\hits.log")) "${line}d5je031w.cab`r`n"
$stored = [IO.File]::ReadAllBytes("$Root\cabs\$app\d5je031w.cab")
if ([Convert]::ToBase64String($stored) -cne [Convert]::ToBase64String($cab)) { throw 'cab differs' }

# A stored cab can be neither overwritten nor deleted.
$refused = $false
try { [IO.File]::WriteAllBytes("$Root\cabs\$app\d5je031w.cab", [byte[]](1, 2, 3)) } catch { $refused = $true }
if (-not $refused) { throw 'a stored cab was overwritten' }
$refused = $false
try { Remove-Item "$Root\cabs\$app\d5je031w.cab" -Force } catch { $refused = $true }
if (-not $refused -or -not (Test-Path "$Root\cabs\$app\d5je031w.cab")) { throw 'a stored cab was deleted' }
Write-Host "example 4.1 on $Root ok"
