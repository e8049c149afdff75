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
    # ---- presets (own and shared), frame order, cost estimate (issues 19 and 20) ----
    "A job preset (farm preset list): your company's NAME first, else a shared one; NAME@PUBLISHER names a "
    "shared preset. It sets chunk size, priority, device and format": (
        "任务预设（farm preset list）：先找本公司的 NAME，否则找共享预设；NAME@PUBLISHER 指定某公司共享的预设。"
        "它决定分块大小、优先级、设备和格式"
    ),
    "Farm Presets": "农场预设",
    "Refresh Presets": "刷新预设",
    "Fetch your company's presets and the shared ones you may use": "获取本公司的预设以及你可以使用的共享预设",
    "Use Preset": "使用预设",
    "Use this preset for the next job": "下一个任务使用此预设",
    "No Preset": "不使用预设",
    "No presets listed yet: refresh the list.": "尚未列出预设：请刷新列表。",
    "Presets": "预设",
    "{count} preset(s): yours and the shared ones.": "{count} 个预设：本公司的和共享的。",
    "Frame Order": "帧顺序",
    "Which frames render first": "哪些帧先渲染",
    "Sequential": "按顺序",
    "Render the frames in order": "按顺序渲染各帧",
    "Preview First": "预览优先",
    "Render a spread of frames first (first, last, then halving the gaps) so the whole shot shows early": (
        "先渲染分布在整个镜头中的帧（首帧、末帧，然后不断对半插入），以便尽早看到整个镜头"
    ),
    "Estimate Cost": "估算费用",
    "Render a few sample frames on the farm (metered like any render) and estimate the job's cost": (
        "在农场上渲染几帧样本（与其他渲染一样计量）并估算任务的费用"
    ),
    "Estimate": "估算",
    "Estimate State": "估算状态",
    "Estimated": "已估算",
    "No estimate yet": "尚无估算",
    "Sample frames are rendering": "样本帧正在渲染",
    "The last estimate": "最近一次估算",
    "The last estimate failed": "最近一次估算失败",
    "Sample Job": "样本任务",
    "Rendering sample frames on the farm to estimate the cost...": "正在农场上渲染样本帧以估算费用……",
    "Estimate: {cost} ({low} to {high}) for {frames} frame(s): {hours} {resource}-hours at {rate}/hour": (
        "估算：{cost}（{low} 至 {high}），共 {frames} 帧：{hours} {resource} 小时，每小时 {rate}"
    ),
    "No estimate: the sample job {job_id} ended {status}.": "无法估算：样本任务 {job_id} 以 {status} 结束。",
    "The farm refused the request: {detail}": "渲染农场拒绝了该请求：{detail}",
    # ---- the farm library (issue 20) ----
    "Farm Library": "农场资源库",
    "Browse Library": "浏览资源库",
    "List the farm library's assets your company may use": "列出本公司可以使用的农场资源库资源",
    "Tag": "标签",
    "Only assets with this tag. Empty: every asset you may use": "只显示带此标签的资源。留空：显示你可以使用的全部资源",
    "Library": "资源库",
    "Library Failed": "资源库操作失败",
    "Data": "数据",
    "What Link and Append take from a .blend asset": "关联和追加从 .blend 资源中取用的数据",
    "Collections": "集合",
    "The library file's collections (with their objects)": "资源库文件中的集合（连同其中的物体）",
    "Objects": "物体",
    "The library file's objects": "资源库文件中的物体",
    "Materials": "材质",
    "The library file's materials": "资源库文件中的材质",
    "Node Groups": "节点组",
    "The library file's node groups": "资源库文件中的节点组",
    "Worlds": "世界环境",
    "The library file's worlds": "资源库文件中的世界环境",
    "Use HDRI as World": "将 HDRI 用作世界环境",
    "Loading an HDRI (.hdr or .exr) makes it the scene world's environment texture": (
        "载入 HDRI（.hdr 或 .exr）时将其设为场景世界环境的环境纹理"
    ),
    "Link or Append Asset": "关联或追加资源",
    "Download a library asset to the local cache, then link or append it into this file": (
        "将资源库资源下载到本地缓存，然后关联或追加到当前文件"
    ),
    "Asset": "资源",
    "Link": "关联",
    "Link (reference the library file) rather than append (copy into this file)": (
        "关联（引用资源库文件），而不是追加（复制到当前文件）"
    ),
    "Names": "名称",
    "Comma-separated names to take. Empty: all of them": "要取用的名称，用逗号分隔。留空：全部取用",
    "Load Image": "载入图像",
    "{count} library asset(s) you may use.": "你可以使用 {count} 个资源库资源。",
    "Linked {count} {what} from {name}: {names}": "已从 {name} 关联 {count} 个{what}：{names}",
    "Appended {count} {what} from {name}: {names}": "已从 {name} 追加 {count} 个{what}：{names}",
    "Loaded {name} as image {image}.": "已将 {name} 载入为图像 {image}。",
    "Loaded {name} and set it as the world's environment.": "已载入 {name} 并将其设为世界环境。",
    "{name} holds no {what} called {wanted}; it holds: {available}": (
        "{name} 中没有名为 {wanted} 的{what}；其中有：{available}"
    ),
    "{name} holds no {what}.": "{name} 中没有{what}。",
    "{name} ({filename}) is neither a .blend file nor an image: pull it with farm library pull.": (
        "{name}（{filename}）既不是 .blend 文件也不是图像：请用 farm library pull 下载。"
    ),
}


def blender_dict() -> dict[str, dict[tuple[str, str], str]]:
    """The dict ``bpy.app.translations.register`` takes: ``{locale: {(context, msgid): translation}}``."""
    return {LOCALE: {(ctx, english): chinese for english, chinese in ZH_HANS.items() for ctx in CONTEXTS}}
