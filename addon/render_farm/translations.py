"""Simplified Chinese for every label and message, registered with ``bpy.app.translations`` (no bpy import here).

Keys are the English source strings exactly as the add-on passes them to Blender; message templates keep their
``{fields}``, which the operator fills in after translating.
"""

# Chinese text uses full-width punctuation (comma, colon, brackets) on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

LOCALE = "zh_HANS"

# Blender looks labels up in the default context "*", operator names in "Operator".
CONTEXTS = ("*", "Operator")

ZH_HANS: dict[str, str] = {
    # panel, operators, preferences
    "Render Farm": "渲染农场",
    "Submit to Farm": "提交到渲染农场",
    "Open in Monitor": "在监控页面中打开",
    "Pack the scene with its textures, upload what the farm lacks and submit a render job": (
        "打包场景及其贴图，只上传农场缺少的文件，并提交渲染任务"
    ),
    "Open the submitted job in the farm's web monitor": "在农场的网页监控中打开已提交的任务",
    "Farm URL": "农场地址",
    "Address of the farm, e.g. http://farm.studio:8321. Empty: FARM_URL or the farm CLI's config": (
        "渲染农场的地址，例如 http://farm.studio:8321。留空：使用 FARM_URL 或 farm 命令行工具的配置"
    ),
    "Token": "令牌",
    "Your farm token. Empty: FARM_TOKEN or the farm CLI's config": (
        "你的农场令牌。留空：使用 FARM_TOKEN 或 farm 命令行工具的配置"
    ),
    "Leave both empty to use the farm CLI's settings.": "两项都留空则使用 farm 命令行工具的设置。",
    "URL": "网址",
    # job settings
    "Job Name": "任务名称",
    "Name shown on the farm. Empty: the file name": "在农场上显示的名称。留空：使用文件名",
    "Scene Frame Range": "场景帧范围",
    "Render the scene's frame range": "渲染场景的帧范围",
    "Start": "起始帧",
    "First frame": "第一帧",
    "End": "结束帧",
    "Last frame": "最后一帧",
    "Step": "帧步长",
    "Render every Nth frame": "每隔 N 帧渲染一帧",
    "Chunk Size": "分块大小",
    "Frames per task: one farm slot renders a chunk with the scene kept loaded": (
        "每个任务块的帧数：一个农场渲染槽在场景保持加载的情况下渲染一个块"
    ),
    "Priority": "优先级",
    "0 to 100: higher runs first among your company's jobs": "0 到 100：在本公司的任务中，数值越高越先渲染",
    "Device": "设备",
    "Which farm slots render the job": "由农场的哪类渲染槽渲染此任务",
    "CPU": "CPU",
    "Render on the farm's CPU slots": "在农场的 CPU 渲染槽上渲染",
    "GPU": "GPU",
    "Render on the farm's GPU slots (CPU slots take it only when the farm has no GPU slot at all)": (
        "在农场的 GPU 渲染槽上渲染（仅当农场完全没有 GPU 渲染槽时才改用 CPU 渲染槽）"
    ),
    "Output Format": "输出格式",
    "File format of the rendered frames": "渲染帧的文件格式",
    "Scene": "场景",
    "The scene's own output settings (format, colour depth, codec, passes and view layers)": (
        "使用场景自身的输出设置（格式、色深、编码、渲染通道和视图层）"
    ),
    "PNG": "PNG",
    "PNG frames, overriding the scene's format": "PNG 帧，覆盖场景的格式",
    "OpenEXR": "OpenEXR",
    "OpenEXR frames (one layer), overriding the scene's format": "OpenEXR 帧（单层），覆盖场景的格式",
    "OpenEXR Multilayer": "OpenEXR 多层",
    "Multilayer OpenEXR frames with every pass and view layer": "包含所有渲染通道和视图层的多层 OpenEXR 帧",
    "Save Before Submit": "提交前保存",
    "Save the .blend before packing it: the farm renders the file as saved": (
        "打包前先保存 .blend 文件：农场渲染的是已保存的文件"
    ),
    "Submit With Missing Files": "缺少文件时仍然提交",
    "Run After": "在这些作业之后运行",
    "Farm job ids (comma separated) this job waits for: it starts once they completed": (
        "此作业等待的农场作业 ID（以逗号分隔）：它们完成后才开始"
    ),
    "Match Frames": "逐帧匹配",
    "Preset": "预设",
    "A job preset of your company (farm preset list): it sets chunk size, priority, device and format": (
        "贵公司的作业预设（farm preset list）：它决定分块大小、优先级、设备和格式"
    ),
    "Each frame waits only for the same frame of the jobs in Run After (comp after render)": (
        "每一帧只等待“在这些作业之后运行”中作业的同一帧（渲染后合成）"
    ),
    "Submit even when textures or libraries the scene uses do not exist": "即使场景使用的贴图或库文件不存在也提交",
    "Missing files:": "缺少的文件：",
    # status
    "State": "状态",
    "Idle": "空闲",
    "Nothing submitted yet": "尚未提交任何任务",
    "Running": "进行中",
    "A submission is running": "正在提交",
    "Submitted": "已提交",
    "The last submission succeeded": "上次提交成功",
    "Failed": "失败",
    "The last submission failed": "上次提交失败",
    "Kind": "类型",
    "Message": "消息",
    "Job ID": "任务 ID",
    "Monitor URL": "监控网址",
    "Missing Files": "缺少的文件",
    "Progress": "进度",
    # messages
    "Cannot reach the farm at {url}. Check the farm URL in the add-on preferences and that the farm runs.": (
        "无法连接到位于 {url} 的渲染农场。请检查插件偏好设置中的农场地址，并确认农场正在运行。"
    ),
    "The farm refused the token. Paste a valid token in Preferences > Add-ons > Render Farm.": (
        "渲染农场拒绝了该令牌。请在 偏好设置 > 插件 > 渲染农场 中粘贴有效的令牌。"
    ),
    "This token may not submit jobs: {detail}": "此令牌无权提交任务：{detail}",
    "Your company's quota is used up, try again later or ask your admin: {detail}": (
        "贵公司的配额已用完，请稍后再试或联系管理员：{detail}"
    ),
    "The scene uses files that do not exist: {files}. Fix the paths, or enable Submit With Missing Files.": (
        "场景使用了不存在的文件：{files}。请修正路径，或启用“缺少文件时仍然提交”。"
    ),
    "Save the .blend file first (File > Save As): the farm renders the saved file.": (
        "请先保存 .blend 文件（文件 > 另存为）：农场渲染的是已保存的文件。"
    ),
    "The file has unsaved changes. Save it, or enable Save Before Submit.": (
        "文件有未保存的更改。请保存，或启用“提交前保存”。"
    ),
    "The farm refused the job: {detail}": "渲染农场拒绝了该任务：{detail}",
    "Check the frame range: {detail}": "请检查帧范围：{detail}",
    "Check the job settings: {detail}": "请检查任务设置：{detail}",
    "The scene has no active camera: set one in Scene properties > Camera, then submit.": (
        "场景没有活动摄像机：请在“场景属性 > 摄像机”中设置后再提交。"
    ),
    "The add-on's farm client cannot be loaded ({detail}). Reinstall the zip built by farm addon build.": (
        "无法加载插件自带的农场客户端（{detail}）。请重新安装由 farm addon build 生成的 zip。"
    ),
    "A submission is already running.": "已有一个提交正在进行。",
    "Submission failed: {detail}": "提交失败：{detail}",
    "Job {job_id} submitted: {frames} frame(s) in {chunks} chunk(s).": (
        "任务 {job_id} 已提交：共 {frames} 帧，分为 {chunks} 块。"
    ),
    "Render Farm: packing dependencies...": "渲染农场：正在打包依赖文件……",
    "Render Farm: uploading {done} of {total}": "渲染农场：正在上传 {done} / {total}",
    "Render Farm: creating the job...": "渲染农场：正在创建任务……",
}


def blender_dict() -> dict[str, dict[tuple[str, str], str]]:
    """The dict ``bpy.app.translations.register`` takes: ``{locale: {(context, msgid): translation}}``."""
    return {LOCALE: {(ctx, english): chinese for english, chinese in ZH_HANS.items() for ctx in CONTEXTS}}
