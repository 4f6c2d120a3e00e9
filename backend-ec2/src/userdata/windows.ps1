<powershell>
# jenkins-cloud default EC2 user data for Windows: runs a Jenkins inbound agent
# from a scheduled task (at startup, as SYSTEM). Every placeholder in double
# braces expands to a single-quoted PowerShell literal (lists to @(...)).
#
# EC2Launch v2 runs a PowerShell user data script once, at the first boot,
# unless the user data asks to persist
# (https://docs.aws.amazon.com/AWSEC2/latest/WindowsGuide/ec2launch-v2.html,
# https://docs.aws.amazon.com/AWSEC2/latest/WindowsGuide/ec2-windows-user-data.html).
# This one does not: the scheduled task below runs on every boot, so a
# warm-pool instance that is stopped and started again runs its next agent.
$ErrorActionPreference = 'Stop'
$Root = Join-Path $env:ProgramData 'jenkins-cloud'
New-Item -ItemType Directory -Force -Path $Root | Out-Null
# Only SYSTEM (S-1-5-18) and Administrators (S-1-5-32-544), inherited by every file.
& icacls.exe $Root /inheritance:r /grant:r '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F' | Out-Null
if ($LASTEXITCODE -ne 0) { throw "icacls $Root failed ($LASTEXITCODE)" }

# Settings for the start script (the values never pass through a parser again).
$Settings = [ordered]@{
  JenkinsUrl      = {{jenkins_url}}
  AgentName       = {{agent_name}}
  WorkDir         = {{work_dir}}
  SecretMode      = {{secret_mode}}
  SecretParameter = {{secret_parameter}}
  Region          = {{region}}
  AgentTagKey     = {{agent_tag_key}}
  ParameterTagKey = {{parameter_tag_key}}
  TransportArgs   = {{transport_args}}
  Environment     = {{environment}}
}
$Settings | ConvertTo-Json | Set-Content -Path (Join-Path $Root 'agent.json') -Encoding UTF8

# Only in secret_delivery "user_data" mode does this write anything.
$InlineSecret = {{secret}}
if ($InlineSecret) {
  $SecretFile = Join-Path $Root 'secret'
  New-Item -ItemType File -Force -Path $SecretFile | Out-Null
  & icacls.exe $SecretFile /inheritance:r /grant:r '*S-1-5-18:F' '*S-1-5-32-544:F' | Out-Null
  [IO.File]::WriteAllText($SecretFile, $InlineSecret)
}
Remove-Variable InlineSecret

$Agent = @'
# Started by the scheduled task jenkins-cloud-agent on every boot: reads the
# agent's identity, fetches the secret and agent.jar, runs the inbound agent
# and starts it again when it exits.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
[Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
$Root = Join-Path $env:ProgramData 'jenkins-cloud'
$Log = Join-Path $Root 'agent.log'
$SecretFile = Join-Path $Root 'secret'
$Jar = Join-Path $Root 'agent.jar'

function Write-Log([string]$Message) {
  Add-Content -Path $Log -Value ('{0:u} {1}' -f (Get-Date), $Message)
}

# Only SYSTEM and Administrators may read the file.
function Protect-File([string]$Path) {
  & icacls.exe $Path /inheritance:r /grant:r '*S-1-5-18:F' '*S-1-5-32-544:F' | Out-Null
  if ($LASTEXITCODE -ne 0) { throw "icacls $Path failed ($LASTEXITCODE)" }
}

# An instance tag through IMDSv2, '' when it is not there. No metadata service
# at all is an error (the loop tries again): a warm-pool instance must not
# fall back to the name it was launched with.
function Get-InstanceTag([string]$Key) {
  $token = Invoke-RestMethod -UseBasicParsing -TimeoutSec 5 -Method Put `
    -Uri 'http://169.254.169.254/latest/api/token' `
    -Headers @{ 'X-aws-ec2-metadata-token-ttl-seconds' = '300' }
  try {
    [string](Invoke-RestMethod -UseBasicParsing -TimeoutSec 5 `
      -Uri "http://169.254.169.254/latest/meta-data/tags/instance/$Key" `
      -Headers @{ 'X-aws-ec2-metadata-token' = $token })
  } catch {
    ''
  }
}

# The SecureString parameter, decrypted: AWS Tools for PowerShell if present
# (https://docs.aws.amazon.com/powershell/latest/reference/items/Get-SSMParameter.html),
# else the AWS CLI.
function Get-Secret([string]$Name, [string]$Region) {
  if (Get-Command Get-SSMParameter -ErrorAction SilentlyContinue) {
    return (Get-SSMParameter -Name $Name -WithDecryption $true -Region $Region).Value
  }
  if (Get-Command aws -ErrorAction SilentlyContinue) {
    $value = & aws ssm get-parameter --region $Region --with-decryption --name $Name `
      --query Parameter.Value --output text
    if ($LASTEXITCODE -ne 0) { throw "aws ssm get-parameter failed ($LASTEXITCODE)" }
    return $value
  }
  throw 'neither AWS Tools for PowerShell (Get-SSMParameter) nor the AWS CLI (aws) is installed'
}

$Conf = Get-Content -Raw -Path (Join-Path $Root 'agent.json') | ConvertFrom-Json
foreach ($kv in @($Conf.Environment)) {
  if ($kv) {
    $k, $v = ([string]$kv) -split '=', 2
    [Environment]::SetEnvironmentVariable($k, $v, 'Process')
  }
}

while ($true) {
  try {
    # A warm-pool instance is restarted for a new agent: its name and secret
    # parameter come from the instance tags, which the backend rewrites first.
    $Name = $Conf.AgentName
    $tag = Get-InstanceTag $Conf.AgentTagKey
    if ($tag) { $Name = $tag }
    if ($Conf.SecretMode -eq 'ssm') {
      $Parameter = $Conf.SecretParameter
      $tag = Get-InstanceTag $Conf.ParameterTagKey
      if ($tag) { $Parameter = $tag }
      $value = [string](Get-Secret $Parameter $Conf.Region)
      $new = "$SecretFile.new"
      New-Item -ItemType File -Force -Path $new | Out-Null
      Protect-File $new
      [IO.File]::WriteAllText($new, $value.Trim())
      Move-Item -Force -Path $new -Destination $SecretFile
    }
    Protect-File $SecretFile
    if (-not (Get-Command java -ErrorAction SilentlyContinue)) {
      throw 'java is not on PATH: the AMI needs Java 17 or later on the machine PATH (nothing is installed)'
    }
    New-Item -ItemType Directory -Force -Path $Conf.WorkDir | Out-Null
    Invoke-WebRequest -UseBasicParsing -Uri ($Conf.JenkinsUrl + 'jnlpJars/agent.jar') -OutFile $Jar
    Set-Location -Path $Conf.WorkDir
    $javaArgs = @()
    if ($env:JAVA_OPTS) { $javaArgs += @($env:JAVA_OPTS -split '\s+' | Where-Object { $_ }) }
    $javaArgs += @('-jar', $Jar, '-url', $Conf.JenkinsUrl, '-name', $Name,
      '-secret', "@$SecretFile", '-workDir', $Conf.WorkDir)
    $javaArgs += @($Conf.TransportArgs)
    Write-Log "starting agent $Name"
    # The agent logs to stderr: not an error for this script.
    $ErrorActionPreference = 'Continue'
    & java @javaArgs 2>&1 | ForEach-Object { "$_" } |
      Out-File -Append -Encoding utf8 -FilePath (Join-Path $Root 'agent.out.log')
    $code = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    Write-Log "agent $Name exited ($code); starting again in 10 s"
  } catch {
    $ErrorActionPreference = 'Stop'
    Write-Log "error: $_ (trying again in 10 s)"
  }
  Start-Sleep -Seconds 10
}
'@
Set-Content -Path (Join-Path $Root 'agent.ps1') -Value $Agent -Encoding UTF8

# Registered again with -Force on a second run: idempotent.
$Action = New-ScheduledTaskAction -Execute 'powershell.exe' `
  -Argument ('-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "{0}"' -f (Join-Path $Root 'agent.ps1'))
$Trigger = New-ScheduledTaskTrigger -AtStartup
$Principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
$TaskSettings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit ([TimeSpan]::Zero) `
  -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) -StartWhenAvailable `
  -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -MultipleInstances IgnoreNew
Register-ScheduledTask -TaskName 'jenkins-cloud-agent' -Action $Action -Trigger $Trigger `
  -Principal $Principal -Settings $TaskSettings -Force | Out-Null
Start-ScheduledTask -TaskName 'jenkins-cloud-agent'
</powershell>
