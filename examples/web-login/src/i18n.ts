/**
 * The page's four languages (the API's locales) and every text a person sees, including a human
 * message for each error the API can give.
 */

export const LOCALES = ['en', 'es', 'fr', 'pt-br'] as const
export type Locale = (typeof LOCALES)[number]

/**
 * The best of our locales for an Accept-Language header: highest q first, then header order; a
 * language matches by its primary subtag (es-MX → es, pt-PT → pt-br, the only Portuguese we have).
 */
export function negotiateLocale(header: string | undefined): Locale {
  if (!header) return 'en'
  const ranges = header
    .split(',')
    .map((part, index) => {
      const [tag = '', ...params] = part.trim().split(';')
      const q = params.map((p) => /^\s*q=([01](?:\.\d{0,3})?)\s*$/.exec(p)?.[1]).find((v) => v !== undefined)
      return { tag: tag.trim().toLowerCase(), q: q === undefined ? 1 : Number(q), index }
    })
    .filter((r) => r.tag && r.q > 0)
    .sort((a, b) => b.q - a.q || a.index - b.index)
  for (const { tag } of ranges) {
    const primary = tag.split('-')[0]
    if (primary === 'pt') return 'pt-br'
    const found = LOCALES.find((l) => l === primary)
    if (found) return found
  }
  return 'en'
}

export interface Messages {
  title: string
  intro: string
  phoneLabel: string
  phoneHint: string
  sendCode: string
  codeLabel: string
  codeSentTo: (phone: string, country: string | undefined) => string
  codeHint: string
  verify: string
  resendWait: string
  resendWaitSr: (seconds: number) => string
  resend: string
  otherNumber: string
  devOutbox: string
  turnstileTest: string
  signedInTitle: string
  userId: string
  phoneNumber: string
  verified: string
  yes: string
  no: string
  status: string
  sessionExpires: string
  factor: string
  factorText: (at: string) => string
  signOut: string
  signedOut: string
  codeResent: string
  errors: Record<ErrorMessage, string>
  wrongCode: (attemptsLeft: number | undefined) => string
  countryNotAllowed: (country: string | undefined) => string
  cooldown: (seconds: number) => string
}

/** Every error a person can meet, whatever its source (API reply, Turnstile, our own checks). */
export type ErrorMessage =
  | 'phoneFormat'
  | 'phoneType'
  | 'tooManyRequests'
  | 'codeExpired'
  | 'codeFormat'
  | 'locked'
  | 'loginExpired'
  | 'sessionEnded'
  | 'turnstile'
  | 'unavailable'
  | 'generic'

const en: Messages = {
  title: 'Sign in with WhatsApp',
  intro: 'We will send a 6-digit code to your WhatsApp. No password needed.',
  phoneLabel: 'WhatsApp number',
  phoneHint: 'With the country code, for example +1 202 555 0123.',
  sendCode: 'Send code',
  codeLabel: 'Code',
  codeSentTo: (phone, country) => `We sent a code by WhatsApp to ${phone}${country ? ` (${country})` : ''}.`,
  codeHint: 'The 6 digits from the WhatsApp message.',
  verify: 'Sign in',
  resendWait: 'New code available in',
  resendWaitSr: (s) => `You can ask for a new code ${s} seconds after the last one.`,
  resend: 'Send a new code',
  otherNumber: 'Use another number',
  devOutbox:
    'Running locally? No WhatsApp message is sent: the code is in the dev outbox, which answers to the project’s id and secret:',
  turnstileTest: 'Turnstile runs with a test key here: the human check passes without a challenge.',
  signedInTitle: 'You are signed in',
  userId: 'User ID',
  phoneNumber: 'Phone number',
  verified: 'Verified',
  yes: 'Yes',
  no: 'No',
  status: 'Account status',
  sessionExpires: 'Session expires',
  factor: 'Signed in with',
  factorText: (at) => `WhatsApp code, ${at}`,
  signOut: 'Sign out',
  signedOut: 'You are signed out.',
  codeResent: 'A new code is on its way. Only the newest code works.',
  errors: {
    phoneFormat:
      'That does not look like a phone number. Enter your WhatsApp number with the country code, for example +1 202 555 0123.',
    phoneType:
      'This type of number cannot receive sign-in codes (premium-rate, toll-free and shared-cost numbers are not allowed). Use your mobile number.',
    tooManyRequests: 'Too many attempts. Please wait a while, then try again.',
    codeExpired: 'This code has expired or was already used. Ask for a new code.',
    codeFormat: 'Enter the 6 digits of the code.',
    locked: 'Too many wrong codes. Signing in with this number is locked for a while; please try again later.',
    loginExpired: 'This sign-in attempt has ended. Enter your number again.',
    sessionEnded: 'Your session has ended. Please sign in again.',
    turnstile: 'We could not confirm that you are a person. Please try again.',
    unavailable: 'Signing in is not available right now. Please try again in a moment.',
    generic: 'Something went wrong. Please try again.',
  },
  wrongCode: (n) =>
    n === undefined
      ? 'That code is not right. Check the latest WhatsApp message.'
      : n <= 0
        ? 'That code is not right, and this code has no attempts left. Ask for a new code.'
        : n === 1
          ? 'That code is not right. 1 attempt left.'
          : `That code is not right. ${n} attempts left.`,
  countryNotAllowed: (c) => `We cannot send codes to numbers ${c ? `from ${c}` : 'of this country'} yet.`,
  cooldown: (s) => `A code was just sent. You can ask for a new one in ${s} seconds.`,
}

const es: Messages = {
  title: 'Inicia sesión con WhatsApp',
  intro: 'Te enviaremos un código de 6 dígitos por WhatsApp. Sin contraseña.',
  phoneLabel: 'Número de WhatsApp',
  phoneHint: 'Con el código de país, por ejemplo +34 612 345 678.',
  sendCode: 'Enviar código',
  codeLabel: 'Código',
  codeSentTo: (phone, country) => `Enviamos un código por WhatsApp al ${phone}${country ? ` (${country})` : ''}.`,
  codeHint: 'Los 6 dígitos del mensaje de WhatsApp.',
  verify: 'Iniciar sesión',
  resendWait: 'Nuevo código disponible en',
  resendWaitSr: (s) => `Puedes pedir un código nuevo ${s} segundos después del último.`,
  resend: 'Enviar un código nuevo',
  otherNumber: 'Usar otro número',
  devOutbox:
    '¿En local? No se envía ningún WhatsApp: el código está en el buzón de desarrollo, que pide el id y el secreto del proyecto:',
  turnstileTest: 'Turnstile usa aquí una clave de prueba: la verificación pasa sin desafío.',
  signedInTitle: 'Has iniciado sesión',
  userId: 'ID de usuario',
  phoneNumber: 'Número de teléfono',
  verified: 'Verificado',
  yes: 'Sí',
  no: 'No',
  status: 'Estado de la cuenta',
  sessionExpires: 'La sesión caduca',
  factor: 'Acceso con',
  factorText: (at) => `código de WhatsApp, ${at}`,
  signOut: 'Cerrar sesión',
  signedOut: 'Has cerrado la sesión.',
  codeResent: 'Va en camino un código nuevo. Solo funciona el más reciente.',
  errors: {
    phoneFormat:
      'Eso no parece un número de teléfono. Escribe tu número de WhatsApp con el código de país, por ejemplo +34 612 345 678.',
    phoneType:
      'Este tipo de número no puede recibir códigos (no se admiten números de tarificación adicional, gratuitos ni de coste compartido). Usa tu número móvil.',
    tooManyRequests: 'Demasiados intentos. Espera un rato y vuelve a intentarlo.',
    codeExpired: 'Este código ha caducado o ya se usó. Pide un código nuevo.',
    codeFormat: 'Escribe los 6 dígitos del código.',
    locked:
      'Demasiados códigos incorrectos. El acceso con este número está bloqueado por un tiempo; inténtalo más tarde.',
    loginExpired: 'Este intento de acceso ha terminado. Escribe tu número de nuevo.',
    sessionEnded: 'Tu sesión ha terminado. Vuelve a iniciar sesión.',
    turnstile: 'No pudimos confirmar que eres una persona. Inténtalo de nuevo.',
    unavailable: 'El acceso no está disponible ahora mismo. Inténtalo de nuevo en un momento.',
    generic: 'Algo salió mal. Inténtalo de nuevo.',
  },
  wrongCode: (n) =>
    n === undefined
      ? 'El código no es correcto. Revisa el último mensaje de WhatsApp.'
      : n <= 0
        ? 'El código no es correcto y ya no quedan intentos. Pide un código nuevo.'
        : n === 1
          ? 'El código no es correcto. Te queda 1 intento.'
          : `El código no es correcto. Te quedan ${n} intentos.`,
  countryNotAllowed: (c) => `Todavía no podemos enviar códigos a números ${c ? `de ${c}` : 'de este país'}.`,
  cooldown: (s) => `Acabamos de enviar un código. Podrás pedir otro en ${s} segundos.`,
}

const fr: Messages = {
  title: 'Connexion avec WhatsApp',
  intro: 'Nous vous envoyons un code à 6 chiffres sur WhatsApp. Aucun mot de passe.',
  phoneLabel: 'Numéro WhatsApp',
  phoneHint: 'Avec l’indicatif du pays, par exemple +33 6 12 34 56 78.',
  sendCode: 'Envoyer le code',
  codeLabel: 'Code',
  codeSentTo: (phone, country) =>
    `Nous avons envoyé un code par WhatsApp au ${phone}${country ? ` (${country})` : ''}.`,
  codeHint: 'Les 6 chiffres du message WhatsApp.',
  verify: 'Se connecter',
  resendWait: 'Nouveau code disponible dans',
  resendWaitSr: (s) => `Vous pouvez demander un nouveau code ${s} secondes après le précédent.`,
  resend: 'Envoyer un nouveau code',
  otherNumber: 'Utiliser un autre numéro',
  devOutbox:
    'En local ? Aucun message WhatsApp n’est envoyé : le code est dans la boîte d’envoi de développement, qui demande l’id et le secret du projet :',
  turnstileTest: 'Turnstile utilise ici une clé de test : la vérification passe sans défi.',
  signedInTitle: 'Vous êtes connecté',
  userId: 'ID utilisateur',
  phoneNumber: 'Numéro de téléphone',
  verified: 'Vérifié',
  yes: 'Oui',
  no: 'Non',
  status: 'État du compte',
  sessionExpires: 'La session expire',
  factor: 'Connecté avec',
  factorText: (at) => `code WhatsApp, ${at}`,
  signOut: 'Se déconnecter',
  signedOut: 'Vous êtes déconnecté.',
  codeResent: 'Un nouveau code arrive. Seul le plus récent fonctionne.',
  errors: {
    phoneFormat:
      'Ce n’est pas un numéro de téléphone valide. Saisissez votre numéro WhatsApp avec l’indicatif du pays, par exemple +33 6 12 34 56 78.',
    phoneType:
      'Ce type de numéro ne peut pas recevoir de code (numéros surtaxés, gratuits et à coût partagé refusés). Utilisez votre numéro de mobile.',
    tooManyRequests: 'Trop de tentatives. Patientez un moment, puis réessayez.',
    codeExpired: 'Ce code a expiré ou a déjà été utilisé. Demandez un nouveau code.',
    codeFormat: 'Saisissez les 6 chiffres du code.',
    locked: 'Trop de codes erronés. La connexion avec ce numéro est bloquée pour un moment ; réessayez plus tard.',
    loginExpired: 'Cette tentative de connexion est terminée. Saisissez à nouveau votre numéro.',
    sessionEnded: 'Votre session est terminée. Veuillez vous reconnecter.',
    turnstile: 'Nous n’avons pas pu confirmer que vous êtes une personne. Réessayez.',
    unavailable: 'La connexion est indisponible pour le moment. Réessayez dans un instant.',
    generic: 'Une erreur s’est produite. Réessayez.',
  },
  wrongCode: (n) =>
    n === undefined
      ? 'Ce code est incorrect. Vérifiez le dernier message WhatsApp.'
      : n <= 0
        ? 'Ce code est incorrect et il ne reste plus d’essai. Demandez un nouveau code.'
        : n === 1
          ? 'Ce code est incorrect. Il reste 1 essai.'
          : `Ce code est incorrect. Il reste ${n} essais.`,
  countryNotAllowed: (c) =>
    `Nous ne pouvons pas encore envoyer de code aux numéros ${c ? `de ce pays : ${c}` : 'de ce pays'}.`,
  cooldown: (s) => `Un code vient d’être envoyé. Vous pourrez en demander un autre dans ${s} secondes.`,
}

const ptBr: Messages = {
  title: 'Entrar com WhatsApp',
  intro: 'Enviaremos um código de 6 dígitos para o seu WhatsApp. Sem senha.',
  phoneLabel: 'Número do WhatsApp',
  phoneHint: 'Com o código do país, por exemplo +55 11 91234 5678.',
  sendCode: 'Enviar código',
  codeLabel: 'Código',
  codeSentTo: (phone, country) => `Enviamos um código pelo WhatsApp para ${phone}${country ? ` (${country})` : ''}.`,
  codeHint: 'Os 6 dígitos da mensagem do WhatsApp.',
  verify: 'Entrar',
  resendWait: 'Novo código disponível em',
  resendWaitSr: (s) => `Você pode pedir um novo código ${s} segundos depois do último.`,
  resend: 'Enviar um novo código',
  otherNumber: 'Usar outro número',
  devOutbox:
    'Rodando localmente? Nenhuma mensagem de WhatsApp é enviada: o código está na caixa de saída de desenvolvimento, que pede o id e o segredo do projeto:',
  turnstileTest: 'O Turnstile usa aqui uma chave de teste: a verificação passa sem desafio.',
  signedInTitle: 'Você entrou',
  userId: 'ID do usuário',
  phoneNumber: 'Número de telefone',
  verified: 'Verificado',
  yes: 'Sim',
  no: 'Não',
  status: 'Status da conta',
  sessionExpires: 'A sessão expira',
  factor: 'Entrou com',
  factorText: (at) => `código do WhatsApp, ${at}`,
  signOut: 'Sair',
  signedOut: 'Você saiu.',
  codeResent: 'Um novo código está a caminho. Só o mais recente funciona.',
  errors: {
    phoneFormat:
      'Isso não parece um número de telefone. Digite seu número do WhatsApp com o código do país, por exemplo +55 11 91234 5678.',
    phoneType:
      'Este tipo de número não pode receber códigos (números de tarifa premium, gratuitos e de custo compartilhado não são aceitos). Use seu número de celular.',
    tooManyRequests: 'Tentativas demais. Aguarde um pouco e tente de novo.',
    codeExpired: 'Este código expirou ou já foi usado. Peça um novo código.',
    codeFormat: 'Digite os 6 dígitos do código.',
    locked: 'Códigos errados demais. O acesso com este número está bloqueado por um tempo; tente mais tarde.',
    loginExpired: 'Esta tentativa de acesso terminou. Digite seu número de novo.',
    sessionEnded: 'Sua sessão terminou. Entre novamente.',
    turnstile: 'Não conseguimos confirmar que você é uma pessoa. Tente de novo.',
    unavailable: 'O acesso não está disponível agora. Tente de novo em instantes.',
    generic: 'Algo deu errado. Tente de novo.',
  },
  wrongCode: (n) =>
    n === undefined
      ? 'Código incorreto. Confira a última mensagem do WhatsApp.'
      : n <= 0
        ? 'Código incorreto e não restam tentativas. Peça um novo código.'
        : n === 1
          ? 'Código incorreto. Resta 1 tentativa.'
          : `Código incorreto. Restam ${n} tentativas.`,
  countryNotAllowed: (c) => `Ainda não enviamos códigos para números ${c ? `de ${c}` : 'deste país'}.`,
  cooldown: (s) => `Um código acabou de ser enviado. Você poderá pedir outro em ${s} segundos.`,
}

export const MESSAGES: Record<Locale, Messages> = { en, es, fr, 'pt-br': ptBr }

/**
 * What a person is told for each `error_type` of the API. Types a person cannot cause (a bug or a
 * misconfiguration of this app, such as bad credentials) say the service is unavailable or that
 * something went wrong; the details go to the log. The wrong-code, country and cooldown messages
 * need context and are chosen by the caller (see `apiErrorMessage` in src/app.tsx).
 */
export const API_ERRORS: Record<string, ErrorMessage | 'wrongCode' | 'countryNotAllowed' | 'phoneFormatOrType'> = {
  // The person's input or situation.
  invalid_phone_number: 'phoneFormatOrType',
  invalid_phone_number_country_code: 'countryNotAllowed',
  otp_code_not_found: 'wrongCode',
  unable_to_auth_otp_code: 'codeExpired',
  invalid_code: 'codeFormat',
  too_many_requests: 'tooManyRequests',
  user_lock_limit_reached: 'locked',
  phone_number_not_found: 'loginExpired',
  invalid_method_id: 'loginExpired',
  user_not_found: 'loginExpired',
  invalid_phone_id: 'loginExpired',
  session_not_found: 'sessionEnded',
  invalid_session_token: 'sessionEnded',
  invalid_session_jwt: 'sessionEnded',
  invalid_session_id: 'sessionEnded',
  attribute_mismatch: 'loginExpired',
  // This app's configuration or the service itself.
  unauthorized_credentials: 'unavailable',
  forbidden: 'unavailable',
  internal_server_error: 'unavailable',
  service_unavailable: 'unavailable',
  service_unreachable: 'unavailable',
  route_not_found: 'unavailable',
  method_not_allowed: 'unavailable',
  unsupported_media_type: 'unavailable',
  request_too_large: 'unavailable',
  invalid_webhook_signature: 'unavailable',
  // A request this app built wrongly.
  bad_request: 'generic',
  invalid_expiration_otp: 'generic',
  invalid_locale: 'generic',
  invalid_ip_address: 'generic',
  invalid_user_agent: 'generic',
  invalid_user_id: 'generic',
  invalid_session_duration_minutes: 'generic',
  invalid_session_custom_claims: 'generic',
  too_many_session_arguments: 'generic',
  no_session_arguments: 'generic',
  too_many_session_revoke_arguments: 'generic',
  no_session_revoke_arguments: 'generic',
  custom_claims_too_large: 'generic',
  user_id_mismatch: 'generic',
  duplicate_phone_number: 'generic',
  // The Users API, which this app does not call.
  duplicate_user_external_id: 'generic',
  metadata_too_large: 'generic',
  metadata_invalid_format: 'generic',
  invalid_exchange_primary_factor_fields: 'generic',
  invalid_exchange_primary_factor_user: 'generic',
  // The frontend SDK API (/sdk/v1), which this app (a backend) does not call.
  endpoint_not_authorized_for_sdk: 'unavailable',
  origin_not_authorized: 'unavailable',
  invalid_session_duration: 'generic',
}
